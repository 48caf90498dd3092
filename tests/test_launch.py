import subprocess
import sys

from cnnlab import launch


def test_launch_env_sets_threads_and_keeps_user_preload(monkeypatch):
    monkeypatch.setattr(launch, "find_tcmalloc", lambda: "/usr/lib/libtcmalloc_minimal.so.4")
    env = launch.launch_env({"LD_PRELOAD": "/opt/mine.so", "PATH": "/bin"})
    assert env["LD_PRELOAD"] == "/usr/lib/libtcmalloc_minimal.so.4:/opt/mine.so"
    assert int(env["OMP_NUM_THREADS"]) >= 1 and env["CNNLAB_LAUNCHED"] == "1"


def test_launcher_switches_off(monkeypatch):
    monkeypatch.setattr(launch, "find_tcmalloc", lambda: "/usr/lib/libtcmalloc_minimal.so.4")
    assert launch.launch_env({"CNNLAB_LAUNCHER": "0"}) is None
    assert launch.launch_env({"CNNLAB_LAUNCHED": "1"}) is None  # never re-executes twice


def test_nothing_to_change_means_no_relaunch(monkeypatch):
    monkeypatch.setattr(launch, "find_tcmalloc", lambda: None)
    assert launch.launch_env({"OMP_NUM_THREADS": "2"}) is None


def test_console_script_runs_through_the_launcher():
    out = subprocess.run([sys.executable, "-c", "import sys; from cnnlab.cli import main; "
                          "sys.argv=['cnnlab','list','recipes','mnist-cnn-s*']; sys.exit(main())"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "mnist-cnn-small" in out.stdout
