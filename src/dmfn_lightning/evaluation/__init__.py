"""Evaluation layer: the Table 1 protocol (data, loop, hole-ratio buckets, reports) and evaluation manifests."""
