"""CDK stacks for batchlane: one stack per lane spec (see app.py)."""
