from codebot.cli import run

run()
