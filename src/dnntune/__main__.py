from dnntune.cli import main

main()
