"""Print the third-party requirements pyproject.toml names (the core and the given extras), one per line.

The image builds install these in a layer of their own, before the project's source is copied in, so a
change to the source reuses the installed dependencies instead of reinstalling them.

    python requirements.py pyproject.toml EXTRA...
"""

import sys
import tomllib


def main(pyproject: str, *extras: str) -> None:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in optional]
    if unknown:
        sys.exit(
            f"{pyproject} has no extra named {', '.join(unknown)} (it has {', '.join(sorted(optional))})"
        )
    for requirement in [*project["dependencies"], *(r for extra in extras for r in optional[extra])]:
        print(requirement)


if __name__ == "__main__":
    main(*sys.argv[1:])
