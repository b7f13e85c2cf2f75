"""Maintenance scripts: the generators and samplers of the bundled workflow-family data.

Nothing here is imported by the platform at run time. Each script writes into a family folder
(``orchestration_assets/defs/<family>/``) and is deterministic: regenerating reproduces the
committed files byte for byte.
"""
