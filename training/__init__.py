"""Walk-forward fit and evaluation, tuning, MLflow tracking and registry (DESIGN sections 6 and 8)."""
