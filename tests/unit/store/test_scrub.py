from pylog.kept_info import kept_info

ENV = ["DB_PASSWORD=hunter2", "KEEP=1", "APP_MODE=x", "NOEQUALS", "KEEP=2"]


def test_only_the_env_the_log_opts_select_is_kept() -> None:
    info = {
        "ContainerID": "c",
        "Config": {"env": "KEEP", "env-regex": "^APP_"},
        "ContainerEnv": ENV,
    }
    assert kept_info(info) == {**info, "ContainerEnv": ["KEEP=2", "APP_MODE=x"]}
    assert kept_info({**info, "Config": {}})["ContainerEnv"] == []
    assert kept_info({**info, "Config": None})["ContainerEnv"] == []


def test_unusable_log_opts_or_env_keep_no_env() -> None:
    info = {"ContainerID": "c", "Config": {"env": "KEEP", "bogus": "1"}, "ContainerEnv": ENV}
    assert kept_info(info)["ContainerEnv"] == []
    assert kept_info({**info, "Config": "KEEP"})["ContainerEnv"] == []
    assert kept_info({"Config": {"env": "KEEP"}, "ContainerEnv": "KEEP=1"})["ContainerEnv"] == []
    assert kept_info({"Config": {"env": "KEEP"}, "ContainerEnv": None})["ContainerEnv"] is None
