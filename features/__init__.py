"""Strictly causal realized-vol, implied-vol, volume, order-flow and calendar features, and the targets
(DESIGN sections 1 and 5). Entry points: :func:`features.pipeline.build_features` (batch),
:func:`features.pipeline.last_row` (serving, same code), :func:`features.targets.make_targets`."""
