"""Core layer: errors, configuration, pixel and size conventions, hole rule, decoding, devices, files and weights.

Nothing here imports another part of the package; every other layer builds on these modules.
"""
