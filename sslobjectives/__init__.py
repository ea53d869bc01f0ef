"""sslobjectives: self-supervised objectives compared on one backbone, with their theory
checked symbolically and numerically, and sweeps submitted to SLURM through submitit."""

__version__ = "0.1.0"
