"""The job registry behind the fair share of cores: live processes count, dead ones are swept away."""

from __future__ import annotations

import subprocess
import sys

from lstmcast import cores


def test_a_live_job_counts_a_dead_one_does_not_and_a_launcher_can_leave():
    before = cores.running_jobs()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lstmcast import cores\n"
         "with cores.presence():\n    print('in', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "in"
        assert cores.running_jobs() == before + 1
    finally:
        holder.kill()  # SIGKILL: no chance to remove its file
        holder.wait()
    assert cores.running_jobs() == before  # the kernel dropped its lock: counted as gone, and its file swept
    with cores.presence():
        assert cores.running_jobs() == before + 1
        cores.leave()
        assert cores.running_jobs() == before


def test_the_share_is_the_cores_divided_among_the_jobs_and_a_fixed_count_wins():
    share = cores.FairShare(0)
    assert 1 <= share.threads() <= cores.machine_cores()
    assert cores.FairShare(3).threads() == 3 and not cores.FairShare(3).due()
    assert share.due() and not share.due()  # recounted at most every RECOUNT_SECONDS
