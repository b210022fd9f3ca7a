"""Review: discrepancies between AI text and signed text, and the QA workflow built on them."""
