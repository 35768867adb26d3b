import JEMCore
print("robust-eval")
