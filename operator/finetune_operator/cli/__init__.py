"""`ftjob`: the same pipeline as the operator, without a cluster, plus kubectl-plugin style commands."""
