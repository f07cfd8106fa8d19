"""The saved classical model: the estimator, its file format, the classifiers and the feature
engine."""
