"""tools/lab"""
