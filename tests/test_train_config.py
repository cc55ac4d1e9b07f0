"""Training settings: every default in --help, config files (YAML/JSON/TOML), precedence, clear errors."""

import json

import pytest
from click.testing import CliRunner

from cra.cli import cli
from cra.errors import ConfigError
from cra.train.config import SFTSettings, build_settings, read_config_file


def test_every_default_is_visible_in_help():
    text = CliRunner().invoke(cli, ["train", "sft", "--help"], terminal_width=2000).output
    defaults = SFTSettings()
    for name in SFTSettings.model_fields:
        flag = "--" + name.replace("_", "-")
        assert flag in text, flag
        value = getattr(defaults, name)
        shown = ",".join(value) if isinstance(value, list) else ("none" if value is None else str(value))
        assert f"[default: {shown}]" in text, (name, shown)
    # The original design's choices, spelled out.
    assert defaults.lora_r == 16 and defaults.learning_rate == 2e-4 and defaults.epochs == 3
    assert defaults.batch_size == 2 and defaults.lr_scheduler == "cosine" and defaults.load_in_4bit
    assert set(defaults.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_help_does_not_import_the_training_stack():
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from cra.cli import cli; "
        "CliRunner().invoke(cli, ['train', 'sft', '--help']); CliRunner().invoke(cli, ['runs', '--help']); "
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(
    "name, text",
    [
        ("sft.yaml", "lora-r: 8\nlearning_rate: 0.001\ntarget_modules: [q_proj, v_proj]\npacking: off\n"),
        (
            "sft.json",
            json.dumps({"lora_r": 8, "learning-rate": 0.001, "target_modules": "q_proj,v_proj", "packing": False}),
        ),
        (
            "sft.toml",
            "[sft]\nlora_r = 8\nlearning_rate = 0.001\ntarget_modules = ['q_proj', 'v_proj']\npacking = false\n",
        ),
    ],
)
def test_config_files_in_three_formats(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    settings = build_settings(SFTSettings, str(path), {})
    assert settings.lora_r == 8 and settings.learning_rate == 0.001
    assert settings.target_modules == ["q_proj", "v_proj"] and settings.packing == "off"
    assert settings.epochs == 3  # untouched defaults stay


def test_command_line_beats_file_beats_defaults(tmp_path):
    path = tmp_path / "sft.json"
    path.write_text(json.dumps({"lora_r": 8, "epochs": 1}))
    settings = build_settings(SFTSettings, str(path), {"lora_r": 32, "epochs": None, "packing": "on"})
    assert settings.lora_r == 32 and settings.epochs == 1 and settings.packing == "on"


def test_validation_errors_name_the_setting(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lora_r: 0\nlearning_rate: fast\nlora_rank: 8\n")
    with pytest.raises(ConfigError) as err:
        build_settings(SFTSettings, str(path), {})
    message = str(err.value)
    assert "lora_r: Input should be greater than or equal to 1" in message
    assert "learning_rate:" in message
    assert "lora_rank: Extra inputs are not permitted" in message  # typos are not silently ignored


def test_bad_options_on_the_command_line_are_clean_errors():
    result = CliRunner().invoke(cli, ["train", "sft", "--dataset", "x", "--max-steps", "0"])
    assert result.exit_code == 1 and "max_steps must be a positive number" in result.output
    result = CliRunner().invoke(cli, ["train", "sft", "--backend", "tensorflow"])
    assert result.exit_code == 2 and "'tensorflow' is not one of" in result.output


def test_unreadable_or_unknown_config_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_config_file(tmp_path / "missing.yaml")
    ini = tmp_path / "sft.ini"
    ini.write_text("[sft]\n")
    with pytest.raises(ConfigError, match="use a .yaml, .yml, .json or .toml file"):
        read_config_file(ini)
    broken = tmp_path / "sft.json"
    broken.write_text("{lora_r: 8")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        read_config_file(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_config_file(listed)


def test_print_config_round_trips_through_a_config_file(tmp_path):
    result = CliRunner().invoke(cli, ["train", "sft", "--print-config", "--lora-r", "8", "--packing", "off"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed == {**SFTSettings().model_dump(), "lora_r": 8, "packing": "off"}
    path = tmp_path / "printed.json"
    path.write_text(result.output)
    assert build_settings(SFTSettings, str(path), {}).model_dump() == printed
