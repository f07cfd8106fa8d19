"""Pixels before either family sees them: stain normalisation, pixel scale, augmentation, cell
crops."""
