"""The forecast call: submissions, roll-ups through the hierarchy, adjustments and the accuracy of every call."""
