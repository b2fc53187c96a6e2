from agileir.cli import main

main(prog_name="agileir")
