"""Maps the top-level folders into the one `forgeline` distribution.

The rule a reader needs: import path = "forgeline." + folder path, e.g. services/data/ is
forgeline.services.data. pyproject.toml holds everything else.
"""

from setuptools import find_packages, setup

FOLDERS = {
    "forgeline.services": "services",
    "forgeline.plugins": "plugins",
    "forgeline.gateway": "gateway",
}

packages = find_packages(include=["forgeline", "forgeline.*"])
for package, folder in FOLDERS.items():
    packages.append(package)
    packages += [f"{package}.{sub}" for sub in find_packages(folder)]

setup(packages=packages, package_dir={"forgeline": "forgeline", **FOLDERS})
