"""
daemon_control - being written (issue 5)
"""
