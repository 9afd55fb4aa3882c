from lstmcast.cli import main

main()
