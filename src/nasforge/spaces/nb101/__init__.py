"""NAS-Bench-101 cell spaces searched one-shot (NAS-Bench-1shot1)."""
