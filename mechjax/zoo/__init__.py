"""The model zoo: small LMs trained here by `configs/zoo/*.py`, shipped with the package."""
