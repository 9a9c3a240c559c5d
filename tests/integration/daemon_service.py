"""
daemon_service - being written (issue 5)
"""
