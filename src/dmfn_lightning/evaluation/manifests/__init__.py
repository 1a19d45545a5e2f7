"""Evaluation manifests: fixed (image, mask) rows, their mask files, the shipped protocols and scoring of outputs."""
