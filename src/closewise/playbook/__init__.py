"""The sales playbook: stages with exit criteria, qualification frameworks, re-qualification."""
