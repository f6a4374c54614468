"""Strictly causal realized-vol, implied-vol and order-flow features (DESIGN sections 1 and 5)."""
