"""
daemon_supervise - being written (issue 5)
"""
