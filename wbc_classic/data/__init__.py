"""What the images are: class names, data-set loaders, the seeded split, synthetic cells."""
