"""Data: load labelled text, versioned snapshots, frozen splits, replay buffer, synthetic demo data.

Import the modules themselves (``loopline.data.loading`` ...): this package re-exports nothing, so a
command that only loads a file does not pay for scikit-learn (splits) or the demo generator.
"""
