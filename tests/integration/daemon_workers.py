"""
daemon_workers - being written (issue 5)
"""
