"""Verdicts at a glance: the paper's claims (conf/claims.yaml) judged on the run dirs with paired statistics over
seeds, written as ``results/verdict.md`` and one self-contained ``results/report.html`` (scripts/report.py).

claims.py reads the claims file and pairs runs by seed, stats.py computes the paired statistics, verdict.py applies
the pre-registered rule, tables.py / figures.py / svg.py / html.py write the table and the page.
"""
