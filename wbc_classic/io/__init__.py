"""Files on disk: images, atomic writes, prediction tables, versions and cache keys.

Imports no other project module, so every other room can use it.
"""
