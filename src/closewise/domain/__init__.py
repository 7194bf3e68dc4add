"""Pure domain vocabulary: enums, periods, money. Imports nothing else from Closewise."""
