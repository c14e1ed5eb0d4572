"""``hydra/launcher=slurm``: hydra-submitit-launcher's SLURM launcher with emergence's ``launch`` (emergence/slurm.py):
job states from squeue where the cluster has no sacct, and every job waited for and each failure reported."""

from __future__ import annotations

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as UpstreamSlurmLauncher


class SlurmLauncher(UpstreamSlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from emergence.slurm import launch  # lazy: hydra imports every plugin module at each start

        return launch(self, job_overrides, initial_job_idx)
