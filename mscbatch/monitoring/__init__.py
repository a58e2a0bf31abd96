"""Monitoring (issue 9 point 5): security events in the logs as they happen, and counters for the admin.

Nothing is counted twice: the counters are queries over what is already recorded (the audit trail's refused
logins and signatures, the bedside checks answered STOP), and the log lines come from listeners on those same
records (security_log.py), not from extra calls in the services.
"""
