"""What this machine allows a job: memory, disk, time and how many train at once (read by the gate and the jobs)."""
