// Runtime: the OCI runtime, built in a later issue.
