"""Meta-learners (imported as ``metarl.agents``)."""
