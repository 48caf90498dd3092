import os
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


def test_threads_are_one_per_physical_core(monkeypatch, tmp_path):
    """As torch.backends.xeon.run_cpu: SMT siblings (same package and core id) are one core."""
    import builtins
    topo = {0: ("0", "0"), 1: ("0", "1"), 2: ("0", "0"), 3: ("0", "1")}  # 2 cores, 2 threads each
    real_open = builtins.open

    def fake_open(path, *a, **k):
        if str(path).startswith("/sys/devices/system/cpu/cpu"):
            n = int(str(path).split("/cpu/cpu")[1].split("/")[0])
            f = tmp_path / f"{n}-{path.rsplit('/', 1)[1]}"
            f.write_text(topo[n][0] if path.endswith("physical_package_id") else topo[n][1])
            return real_open(f, *a, **k)
        return real_open(path, *a, **k)
    monkeypatch.setattr(builtins, "open", fake_open)
    assert launch.physical_cores({0, 1, 2, 3}) == 2
    assert launch.physical_cores({0, 2}) == 1  # two siblings
    monkeypatch.setattr(launch, "physical_cores", lambda: 7)
    monkeypatch.setattr(launch, "find_tcmalloc", lambda: None)
    assert launch.launch_env({"PATH": "/bin"})["OMP_NUM_THREADS"] == "7"


def test_physical_cores_falls_back_to_logical_cpus_without_topology(monkeypatch):
    import builtins

    def no_sys(path, *a, **k):
        raise FileNotFoundError(path)
    monkeypatch.setattr(builtins, "open", no_sys)
    assert launch.physical_cores({0, 1, 2}) == 3


def test_relaunch_does_not_import_from_the_working_directory(tmp_path):
    """The console script does not search the working directory for modules; the re-executed
    command must not either (``python -m`` did: a user's cnnlab.py there broke every command)."""
    work, bin_ = tmp_path / "work", tmp_path / "bin"
    work.mkdir(), bin_.mkdir()
    (work / "cnnlab.py").write_text("print('the user script ran')\n")
    script = bin_ / "cnnlab"  # as pip writes a console script
    script.write_text("import sys\nfrom cnnlab.cli import main\nsys.exit(main())\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CNNLAB_LAUNCHER", "CNNLAB_LAUNCHED")}
    env.pop("OMP_NUM_THREADS", None)  # so that the launcher re-executes
    out = subprocess.run([sys.executable, str(script), "list", "recipes", "mnist-cnn-s*"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "mnist-cnn-small" in out.stdout and "the user script ran" not in out.stdout
