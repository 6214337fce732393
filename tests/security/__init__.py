"""Safety: hostile code, hostile text. The bot run end to end against attacks on it."""
