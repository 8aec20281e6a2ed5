import click


@click.group()
def main() -> None:
    """integration-core"""
