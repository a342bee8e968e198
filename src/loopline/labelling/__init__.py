"""Label Studio loop: flagged predictions out as tasks with pre-annotations, completed annotations back in
as feedback batches through the feedback contract (``loopline label push/pull/webhook``)."""
