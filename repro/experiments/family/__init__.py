"""Science shared by a family of claims (imported by the claim modules; no Experiment here)."""
