"""The serving API: predictions with ids, labels sent back, the production alias followed."""
