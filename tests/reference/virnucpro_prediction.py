# VirNucPro's prediction.py, its functions and its result writing, copied verbatim (CRLF line ends as in the
# original) from https://github.com/Li-Jing-1997/VirNucPro, commit 0f93f2755a7ea1acd3ff1bcf182892f960ef3326,
# file prediction.py. Copyright (c) 2024 Jing Li, MIT License: see LICENSE beside this file.
# Lines that are not the original's, each marked `# (ours)` or in these comments:
# - the first import: prediction.py has `from units import *`; units.py is vendored here as virnucpro_units.py;
# - `def write_results(...)`: prediction.py writes its two result files inline in make_predictdata (its lines
#   173-191, copied below verbatim, indentation included); this def line makes them callable. Left out:
#   make_predictdata's other lines (chunking, both feature extractions, the merge, torch.load of the model)
#   and the script's last lines, which read sys.argv when imported.
from virnucpro_units import *  # (ours: the original is `from units import *`)
from concurrent.futures import ProcessPoolExecutor, as_completed
from torch.utils.data import Dataset, DataLoader
from torch import nn
import torch.nn.functional as F
import sys
import pandas as pd

def process_record(record):
    sequence = str(record.seq).upper()
    seqid = record.id
    result = identify_seq(seqid, sequence)
    return result

def determine_virus(group):
    max_score1 = group["score1"].max()
    max_score2 = group["score2"].max()
    return pd.Series({"Is_Virus": max_score2 >= max_score1})  # 直接返回 True/False

class PredictDataBatchDataset(Dataset):
    def __init__(self, file_list):
        self.file_list = file_list
        self.ids = []
        self.data = []
        self._load_all_data()

    def _load_all_data(self):
        for file_path in self.file_list:
            data_dict = torch.load(file_path)
            data = data_dict['data']
            self.data.append(data)
            ids = data_dict['ids']
            self.ids.extend(ids)

    def __len__(self):
        return sum(d.size(0) for d in self.data)

    def __getitem__(self, idx):
        cumulative_size = 0
        for data in self.data:
            if cumulative_size + data.size(0) > idx:
                index_in_file = idx - cumulative_size
                return data[index_in_file], self.ids[cumulative_size + index_in_file]
            cumulative_size += data.size(0)
        raise IndexError("Index out of range")
    

class MLPClassifier(nn.Module):
    def __init__(self, input_dim, hidden_dim, num_class):
        super(MLPClassifier, self).__init__()

        self.hidden_layer = nn.Linear(input_dim, hidden_dim)
        self.bn1 = nn.BatchNorm1d(hidden_dim)

        self.output_layer = nn.Linear(hidden_dim, num_class)

        self.dropout = nn.Dropout(0.5)
        self.init_weights()

    def init_weights(self):
        nn.init.xavier_uniform_(self.hidden_layer.weight)
        nn.init.xavier_uniform_(self.output_layer.weight)

    def forward(self, x):
        x = self.hidden_layer(x)
        x = self.bn1(x)
        x = F.relu(x)
        x = self.dropout(x)
        x = self.output_layer(x)
        return x



def predict(model, data_loader, device):
    model.eval()
    all_predictions = []
    all_probabilities = []
    all_seqids = []

    with torch.no_grad():
        for batch_data, batch_seqids in data_loader:
            batch_data = batch_data.to(device)
            outputs = model(batch_data)
            
            probabilities = F.softmax(outputs, dim=1)
            _, predicted = torch.max(probabilities.data, 1)

            label_map = {1: 'virus', 0: 'others'}
            predicted_labels = [label_map[pred.item()] for pred in predicted]
            
            all_predictions.extend(predicted_labels)
            all_probabilities.extend(probabilities.cpu().numpy())
            all_seqids.extend(batch_seqids)

    return all_seqids, all_predictions, all_probabilities


def write_results(output_folder, seqids, predictions, probabilities):  # (ours: make_predictdata's lines 173-191)
    output_file = output_folder + 'prediction_results.txt'

    with open(output_file, 'w') as f:
        f.write("Sequence_ID\tPrediction\tscore1\tscore2\n")
        for seqid, prediction, probability in zip(seqids, predictions, probabilities):
            prob_str = '\t'.join(map(str, probability))
            f.write(f"{seqid}\t{prediction}\t{prob_str}\n")

    print(f"Predictions saved to {output_file}")

    df = pd.read_csv(output_file, sep="\t")

    df["Modified_ID"] = df["Sequence_ID"].str[:-2]

    df = df.groupby("Modified_ID", group_keys=False).apply(determine_virus).reset_index()

    df.to_csv(output_folder + "prediction_results_highestscore.csv", sep="\t", index=False)

    print("Prediction results with highest sore saved to 'prediction_results_highestscore.csv'")
