"""`streamgate report`: one self-contained HTML page of charts from the lakehouse tables."""
