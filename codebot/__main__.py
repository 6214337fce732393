from codebot.cli import main

main()
