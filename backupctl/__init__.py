"""The backupctl command line."""
