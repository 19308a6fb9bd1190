"""Analysis and plotting of search results (cell diagrams, landscapes, statistics).

Submodules import matplotlib themselves, so importing this package stays cheap.
"""
