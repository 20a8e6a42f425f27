"""Views of plans, apply results and audits: text for people, JSON and markdown for machines.

Each view is rendered from the same model values that the JSON documents serialize.
"""
