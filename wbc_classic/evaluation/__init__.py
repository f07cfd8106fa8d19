"""Numbers about models and data (scores, profiling, segmentation quality, leakage); knows no
model."""
