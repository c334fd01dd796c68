//! `aws-secrets-manager`: to be written (see the task).
