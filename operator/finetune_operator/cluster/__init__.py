"""The operator's side of the Kubernetes API: one gateway for reads and writes, the permissions it needs
(`rbac`), the names and labels of what it creates (`identity`), and the watch-fed view of its training Jobs
and pods (`watched`)."""
