"""Sample quality: the FID Inception-v3 in Flax, FID/KID, reference data."""
